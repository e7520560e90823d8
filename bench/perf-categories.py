#!/usr/bin/env python3
"""Aggregates `perf script` output (one sample per block, first frame = self) by category of the leaf frame.

Usage: perf report -i perf.data --no-children --sort dso,sym -q -g none --field-separator='|' | python3 bench/perf-categories.py
(record with DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 so JIT-compiled frames have names)
"""
import re, sys, collections

def category(sym, dso):
    m = re.search(r'\[([A-Za-z0-9_.]+)\]', sym)
    if m and not sym.startswith('['):
        asm = m.group(1)
        if asm.startswith('JobLog'): return 'JobLog (' + asm + ')'
        if asm.startswith('MassTransit'): return 'MassTransit'
        if asm.startswith('RabbitMQ'): return 'RabbitMQ.Client'
        if asm.startswith('System.Text.Json'): return 'System.Text.Json'
        if asm.startswith('Microsoft.Data.Sqlite') or asm.startswith('SQLitePCL'): return 'Microsoft.Data.Sqlite/SQLitePCL'
        if asm.startswith('Npgsql'): return 'Npgsql'
        return 'managed: ' + asm
    if 'libcoreclr' in dso: return 'runtime (libcoreclr: GC, allocation, type checks, threads)'
    if 'libclrjit' in dso: return 'JIT'
    if 'e_sqlite3' in dso: return 'SQLite engine'
    if 'kernel' in dso: return 'kernel'
    if 'libc' in dso: return 'libc'
    if 'System.Private.CoreLib' in dso or 'System.' in dso: return 'managed (precompiled BCL)'
    return 'other: ' + dso

counts = collections.Counter()
total = 0.0
for line in sys.stdin:
    parts = line.strip().split('|')
    if len(parts) < 3 or not parts[0].strip().endswith('%'): continue
    pct, dso, sym = float(parts[0].strip().rstrip('%')), parts[1].strip(), parts[2].strip()
    sym = re.sub(r'^\[.\]\s*', '', sym)
    counts[category(sym, dso)] += pct
    total += pct
for k, v in counts.most_common(25):
    print(f'{v:6.1f}%  {k}')
