#!/bin/sh
# Checks test/reports/emit/x86_vectors.tsv with binutils, both ways: GNU as assembles each source
# to exactly the bytes written, and objdump decodes each byte string as one instruction of the same
# mnemonic. Needs as and objdump (binutils); CI does not run it, the unit test holds the table.
# Usage: sh scripts/x86_vectors_check.sh   (exit 1 on any mismatch)
set -u
cd "$(dirname "$0")/.." || exit 2
t=$(mktemp -d) || exit 2
trap 'rm -rf "$t"' EXIT
bad=0
n=0
while IFS='	' read -r name src want; do
  case "$name" in '#'*|'') continue ;; esac
  n=$((n + 1))
  printf '.text\n%s\n' "$src" > "$t/x.s"
  if ! as --64 -o "$t/x.o" "$t/x.s" 2> "$t/err"; then
    echo "FAIL $name: as: $(head -1 "$t/err")"; bad=1; continue
  fi
  got=$(objdump -d "$t/x.o" | awk -F'\t' '/^ +[0-9a-f]+:/{print $2}' | tr -s ' \n' ' ' | sed 's/ *$//')
  if [ "$got" != "$want" ]; then echo "FAIL $name: as gives [$got], table says [$want]"; bad=1; continue; fi
  printf '%s' "$want" | xxd -r -p > "$t/x.bin"
  dec=$(objdump -D -b binary -m i386:x86-64 "$t/x.bin" | awk -F'\t' '/^ +[0-9a-f]+:/{print $3}' | sed 's/ .*//' | head -1)
  first=$(printf '%s' "$src" | sed 's/^{disp32} //; s/^rex64 //' | awk '{print $1}')
  case "$dec" in
    "$first"*|"rex.W") ;;
    *) case "$first:$dec" in jz:je|jnz:jne|movabs:movabs|ljmp:rex.W) ;; *) echo "FAIL $name: objdump decodes [$dec], source says [$first]"; bad=1; continue ;; esac ;;
  esac
  echo "ok   $name	$want	$dec"
done < test/reports/emit/x86_vectors.tsv
echo "$n vectors checked"
exit $bad
