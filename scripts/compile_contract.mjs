#!/usr/bin/env node
// Compile the escrow (and the test contracts in contracts/test/) offline with the solc pinned in
// package.json, through solc's standard JSON interface: evmVersion cancun, optimizer 200 runs.
// Writes one artifact per contract to contracts/build/<Name>.json with sorted keys, so the output
// is byte-for-byte reproducible and can be committed.
//
//   node scripts/compile_contract.mjs                 # write contracts/build/
//   node scripts/compile_contract.mjs --out-dir DIR   # write elsewhere (the tests compare)
//   node scripts/compile_contract.mjs --check         # exit 1 when contracts/build/ is stale

import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const CONTRACTS_DIR = join(ROOT, 'contracts')
const DEFAULT_OUT_DIR = join(CONTRACTS_DIR, 'build')
const EVM_VERSION = 'cancun'
const OPTIMIZER_RUNS = 200

function sourceFiles () {
  const files = []
  for (const dir of [CONTRACTS_DIR, join(CONTRACTS_DIR, 'test')]) {
    if (!existsSync(dir)) continue
    for (const name of readdirSync(dir).sort()) {
      if (name.endsWith('.sol')) files.push(join(dir, name))
    }
  }
  return files
}

/** JSON with object keys sorted at every level, two-space indent, trailing newline. */
function stableStringify (value) {
  const sortKeys = (v) => {
    if (Array.isArray(v)) return v.map(sortKeys)
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]))
    }
    return v
  }
  return JSON.stringify(sortKeys(value), null, 2) + '\n'
}

function compile () {
  const pinned = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies.solc
  const solc = require('solc')
  const version = solc.version()
  if (!version.startsWith(`${pinned}+`)) {
    throw new Error(`solc ${version} is installed but package.json pins ${pinned}: run npm ci`)
  }
  const sources = {}
  const sourceText = {}
  for (const file of sourceFiles()) {
    // Source names are repository-relative with forward slashes: they end up in the metadata
    // hash inside the bytecode, so they must not depend on where the checkout lives.
    const name = relative(ROOT, file).split(sep).join('/')
    sourceText[name] = readFileSync(file)
    sources[name] = { content: sourceText[name].toString('utf8') }
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } }
    }
  }
  const output = JSON.parse(solc.compile(JSON.stringify(input)))
  const problems = (output.errors || []).filter((e) => e.severity === 'error')
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n')
  if (problems.length) throw new Error(`compilation failed with ${problems.length} error(s)`)

  const artifacts = {}
  for (const [sourceName, contracts] of Object.entries(output.contracts)) {
    for (const [contractName, out] of Object.entries(contracts)) {
      if (!out.evm.bytecode.object) continue // interfaces and abstract contracts
      artifacts[`${contractName}.json`] = stableStringify({
        contractName,
        sourceName,
        compiler: version,
        evmVersion: EVM_VERSION,
        optimizerRuns: OPTIMIZER_RUNS,
        abi: out.abi,
        bytecode: '0x' + out.evm.bytecode.object,
        deployedBytecode: '0x' + out.evm.deployedBytecode.object,
        sourceSha256: createHash('sha256').update(sourceText[sourceName]).digest('hex')
      })
    }
  }
  return artifacts
}

function main (argv) {
  const check = argv.includes('--check')
  const outIndex = argv.indexOf('--out-dir')
  const outDir = outIndex >= 0 ? argv[outIndex + 1] : DEFAULT_OUT_DIR
  const artifacts = compile()
  if (check) {
    const stale = Object.entries(artifacts).filter(([file, text]) => {
      const path = join(outDir, file)
      return !existsSync(path) || readFileSync(path, 'utf8') !== text
    })
    for (const [file] of stale) process.stderr.write(`stale: ${join(outDir, file)}\n`)
    if (stale.length) {
      process.stderr.write('run: node scripts/compile_contract.mjs\n')
      process.exit(1)
    }
    return
  }
  mkdirSync(outDir, { recursive: true })
  for (const [file, text] of Object.entries(artifacts)) {
    writeFileSync(join(outDir, file), text)
    const size = (JSON.parse(text).deployedBytecode.length - 2) / 2
    process.stdout.write(`${join(outDir, file)} (${size} bytes deployed)\n`)
  }
}

main(process.argv.slice(2))
