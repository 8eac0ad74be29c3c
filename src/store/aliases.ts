/**
 * Task-type aliases (wire-protocol.md §7.5). Workers and submitters spell the same
 * kind of work differently (`text_generation`, `text-generation`, `generation`); a
 * claimer's filter is expanded to every spelling so the queue can match the stored,
 * merely lower-cased type without rewriting what the submitter sent.
 */

const ALIAS_GROUPS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['text-generation', ['text_generation', 'generation']],
  ['text2text-generation', ['text2text_generation', 'text2text']],
  ['embedding', ['embeddings', 'text-embedding', 'text_embedding', 'text_embeddings']],
  ['text-classification', ['text_classification']],
  ['hf.pipeline', ['hf_pipeline']],
  ['llm.generate', ['llm_generate']],
  ['multimodal-generation', ['multimodal_generation', 'vision-generation', 'vision_generation']],
  ['tool.call', ['tool']],
  ['voice.tts', ['voice_tts', 'voice-tts', 'tts', 'text-to-speech', 'text_to_speech']],
  ['voice.asr', [
    'voice_asr', 'voice-asr', 'voice.stt', 'voice_stt', 'voice-stt', 'asr', 'stt',
    'speech-to-text', 'speech_to_text', 'automatic-speech-recognition', 'automatic_speech_recognition'
  ]],
  ['voice.audio-validate', [
    'voice.audio_validate', 'voice_audio_validate', 'voice-audio-validate', 'audio-validate',
    'audio_validate', 'audio-validation', 'audio_validation'
  ]]
]

/** spelling → canonical name, canonical included. */
const CANONICAL = new Map<string, string>()
/** canonical → [canonical, ...aliases]. */
const SPELLINGS = new Map<string, readonly string[]>()
for (const [canonical, aliases] of ALIAS_GROUPS) {
  SPELLINGS.set(canonical, [canonical, ...aliases])
  CANONICAL.set(canonical, canonical)
  for (const a of aliases) CANONICAL.set(a, canonical)
}

export function normalizeTaskType (t: string): string {
  return String(t).trim().toLowerCase()
}

/** The canonical spelling; an unknown type is its own (normalised) canonical name. */
export function canonicalTaskType (t: string): string {
  const n = normalizeTaskType(t)
  return CANONICAL.get(n) ?? n
}

/** Every spelling of every listed type, first-seen order, no duplicates, no empties. */
export function expandTaskTypes (list: Iterable<string>): string[] {
  const out = new Set<string>()
  for (const raw of list) {
    const n = normalizeTaskType(raw)
    if (n === '') continue
    const canonical = CANONICAL.get(n)
    if (canonical === undefined) {
      out.add(n)
      continue
    }
    for (const s of SPELLINGS.get(canonical) ?? [canonical]) out.add(s)
  }
  return [...out]
}

/** Sorted canonical names of a list (status `capabilities.task_types`). */
export function canonicalTaskTypes (list: Iterable<string>): string[] {
  const out = new Set<string>()
  for (const raw of list) {
    const n = normalizeTaskType(raw)
    if (n !== '') out.add(CANONICAL.get(n) ?? n)
  }
  return [...out].sort()
}
