"""The function lists of tools/startup-profile (see there).

callgrind BIN LIST FILE...  the functions of BIN that callgrind profiles ran, in the order of
                            the files, written to LIST (one name a line); prints the count.
strays BIN LIST FILE...     functions of BIN outside .text.imsync_startup whose first touch
                            faulted in perf page-fault recordings (`perf record -e page-faults
                            -d`), appended to LIST when not listed yet; prints how many are new.
"""
import bisect
import os
import re
import subprocess
import sys

# names a linker script takes without quoting
SPELLABLE = re.compile(r"[A-Za-z0-9_.$]+")


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def functions_by_address(binary):
    """(address, size, name) of the binary's functions, by address."""
    syms = []
    for line in run("nm", "-S", "-n", binary).splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwW":
            syms.append((int(f[0], 16), int(f[1], 16), f[3]))
    return syms


def callgrind_functions(binary, path):
    """Functions of `binary` that a callgrind profile ran, in the profile's order."""
    names, objects, seen, current = {}, {}, [], None
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            if m.group(3):
                objects[m.group(2)] = m.group(3)
            if m.group(1) == "ob":
                current = objects[m.group(2)]
                current = current if current == "???" else os.path.realpath(current)
            continue
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            # valgrind names the object of code outside `.text` "???": that is the code an
            # earlier run grouped; only the binary's own symbols are kept by the caller
            if m.group(1) == "fn" and current in (binary, "???"):
                seen.append(re.sub(r"'\d+$", "", names[m.group(2)]))
    return seen


def grouped_code(binary):
    """The addresses of .text.imsync_startup, and address minus file offset in its segment."""
    m = re.search(r"\.text\.imsync_startup\s+PROGBITS\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)",
                  run("readelf", "-S", "-W", binary))
    if not m:
        sys.exit(f"{binary}: no .text.imsync_startup (link it with the callgrind list first)")
    addr, off, size = (int(x, 16) for x in m.groups())
    return range(addr, addr + size), addr - off


def fault_offsets(binary, path):
    """File offsets in the binary's code where a perf page-fault recording faulted."""
    maps, offsets = [], []
    for line in run("perf", "script", "-i", path, "--show-mmap-events", "-F", "addr").splitlines():
        m = re.search(r"\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+) .*\]: r-xp (\S+)$", line)
        if m:
            if os.path.realpath(m.group(4)) == binary:
                maps.append(tuple(int(x, 16) for x in m.groups()[:3]))
            continue
        f = line.split()
        if len(f) == 1 and re.fullmatch(r"[0-9a-f]+", f[0]):
            a = int(f[0], 16)
            offsets += [a - base + off for base, length, off in maps if base <= a < base + length]
    return offsets


def main():
    mode, binary, list_path, files = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3], sys.argv[4:]
    syms = functions_by_address(binary)
    if mode == "callgrind":
        have = {name for _, _, name in syms}
        order, listed = [], set()
        for path in files:
            for name in callgrind_functions(binary, path):
                if name in have and name not in listed and SPELLABLE.fullmatch(name):
                    listed.add(name)
                    order.append(name)
        with open(list_path, "w") as out:
            out.writelines(name + "\n" for name in order)
        print(len(order))
    elif mode == "strays":
        listed = set(open(list_path).read().split())
        starts = [a for a, _, _ in syms]
        grouped, delta = grouped_code(binary)
        new = []
        for path in files:
            for off in fault_offsets(binary, path):
                vaddr = off + delta
                i = bisect.bisect_right(starts, vaddr) - 1
                if i < 0 or vaddr in grouped:
                    continue
                addr, size, name = syms[i]
                if vaddr < addr + max(size, 1) and name not in listed and SPELLABLE.fullmatch(name):
                    listed.add(name)
                    new.append(name)
        with open(list_path, "a") as out:
            out.writelines(name + "\n" for name in new)
        print(len(new))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
