#!/usr/bin/env python3
"""
check_layers.py - no call runs upward: for each layer's static library,
every symbol it takes from another of emitd's libraries must be defined in
a layer below it (doc/DESIGN.md, "Layers"). Reads the libraries with nm.

usage: check_layers.py NM LIB...   (each LIB is build/<folder>/libem*.a)
Prints one TAP line per library; exits 1 if any calls upward.
"""
import os
import subprocess
import sys

# Bottom first. The broker process sits on the services only; a layer may
# use any layer listed before it.
ORDER = ['proto', 'common', 'ipc', 'state', 'auth', 'redis', 'broker', 'net', 'http', 'eio',
         'sio', 'api', 'adminui', 'lua', 'worker', 'master']
# The broker is not under the worker's layers: they must not call it.
NOT_BELOW = {'broker': {'net', 'http', 'eio', 'sio', 'api', 'adminui', 'lua', 'worker'},
             'auth': {'broker'}}


def symbols(nm, lib):
    out = subprocess.run([nm, '--defined-only', '-g', lib], capture_output=True,
                         text=True, check=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if len(l.split()) == 3}
    out = subprocess.run([nm, '-u', lib], capture_output=True, text=True,
                         check=True).stdout
    undefined = {l.split()[-1] for l in out.splitlines() if l.strip() and not l.endswith(':')}
    return defined, undefined


def main():
    nm, libs = sys.argv[1], sys.argv[2:]
    layers = {}
    for lib in libs:
        layer = os.path.basename(os.path.dirname(lib))
        if layer not in ORDER:
            print(f'check_layers: {lib}: folder {layer!r} is not a known layer', file=sys.stderr)
            return 2
        layers[layer] = (lib, *symbols(nm, lib))
    owner = {}
    for layer, (_, defined, _) in layers.items():
        for sym in defined:
            owner[sym] = layer
    print(f'1..{len(layers)}')
    failed = 0
    for n, layer in enumerate(sorted(layers, key=ORDER.index), 1):
        lib, _, undefined = layers[layer]
        rank = ORDER.index(layer)
        bad = sorted(f'{s} ({owner[s]})' for s in undefined
                     if s in owner and owner[s] != layer
                     and (ORDER.index(owner[s]) > rank
                          or layer in NOT_BELOW.get(owner[s], ())))
        if bad:
            failed += 1
            print(f'not ok {n} - {layer}/ calls only layers below it')
            for b in bad:
                print(f'#   calls upward: {b}')
        else:
            print(f'ok {n} - {layer}/ calls only layers below it')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
