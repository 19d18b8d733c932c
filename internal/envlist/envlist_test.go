package envlist

import (
	"slices"
	"testing"
)

func TestMerge(t *testing.T) {
	got := Merge([]string{"A=1", "B=2", "A=3", "C", "B=", "C=4"})
	if want := []string{"A=3", "B=", "C=4"}; !slices.Equal(got, want) {
		t.Errorf("Merge = %q, want %q", got, want)
	}
	if got := Merge(nil); len(got) != 0 {
		t.Errorf("Merge(nil) = %q", got)
	}
}
