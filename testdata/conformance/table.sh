#!/bin/sh
# table.sh prints the case table of README.md from the case files.
cd "$(dirname "$0")" || exit 1
echo "| case | source (upstream test) | notes |"
echo "|---|---|---|"
for d in */; do
	d=${d%/}
	src=$(sed -n 's/^source //p' "$d/case" | paste -sd ';' | sed 's/;/; /g')
	note=$(sed -n 's/^note //p' "$d/case" | paste -sd ' ')
	echo "| $d | $src | $note |"
done
