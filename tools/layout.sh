#!/bin/sh
# Fails when README.md's layout paragraph does not name every package under
# internal/ and cmd/, or names one that does not exist.
set -eu
layout=$(awk '/^Layout: /{on=1} on{print} on&&/^$/{exit}' README.md)
if [ -z "$layout" ]; then
	echo "README.md has no paragraph starting with 'Layout: '" >&2
	exit 1
fi
status=0
for dir in $(git ls-files 'internal/*.go' 'cmd/*.go' | xargs -n1 dirname | sort -u); do
	case "$dir" in internal/*/*) continue ;; esac # sub-packages go with their parent
	if ! printf '%s\n' "$layout" | grep -q "\`$dir\`"; then
		echo "README.md's layout does not name $dir" >&2
		status=1
	fi
done
for dir in $(printf '%s\n' "$layout" | grep -o '`\(internal\|cmd\|test\)/[a-z0-9/]*`' | tr -d '`' | sort -u); do
	if [ ! -d "$dir" ]; then
		echo "README.md's layout names $dir, which does not exist" >&2
		status=1
	fi
done
exit $status
