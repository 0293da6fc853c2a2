#!/bin/sh
# Fails when a file tracked by git is an executable binary (ELF, Mach-O,
# PE or a #!-less file with the executable bit and NUL bytes): build outputs
# such as test binaries never belong in the repository.
set -eu
cd "$(git rev-parse --show-toplevel)"
bad=""
for f in $(git ls-files); do
	[ -f "$f" ] || continue
	magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
	case "$magic" in
	7f454c46 | feedface | feedfacf | cefaedfe | cffaedfe | cafebabe | 4d5a*)
		bad="$bad $f" ;;
	*)
		if [ -x "$f" ] && [ "$(head -c 2 "$f")" != "#!" ] && head -c 8000 "$f" | od -An -tx1 | grep -q ' 00'; then
			bad="$bad $f"
		fi ;;
	esac
done
if [ -n "$bad" ]; then
	echo "tracked executable binaries (remove them with git rm --cached and ignore them):"
	for f in $bad; do echo "  $f"; done
	exit 1
fi
