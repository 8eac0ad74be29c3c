// The dashboard's build: dashboard/ → dist/dashboard (served by the HTTP listener, shipped in the package).
import { defineConfig } from 'vite'

export default defineConfig({
  root: 'dashboard',
  base: './',
  logLevel: 'warn',
  build: { outDir: '../dist/dashboard', emptyOutDir: true, sourcemap: false }
})
