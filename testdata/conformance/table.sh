#!/bin/sh
# table.sh rewrites the case table at the end of README.md (after the
# "<!-- cases -->" line) from the source and note lines of the case files.
cd "$(dirname "$0")" || exit 1
{
	sed '/^<!-- cases -->$/q' README.md
	echo
	echo "| case | source (upstream test) | notes |"
	echo "|---|---|---|"
	for d in */; do
		d=${d%/}
		src=$(sed -n 's/^source //p' "$d/case" | paste -sd ';' | sed 's/;/; /g' | sed 's/|/\\|/g')
		note=$(sed -n 's/^note //p' "$d/case" | paste -sd ' ' | sed 's/|/\\|/g')
		echo "| $d | $src | $note |"
	done
} > README.md.new && mv README.md.new README.md
