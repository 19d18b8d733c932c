package passwd

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const passwdText = `root:x:0:0:root:/root:/bin/sh
# comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:app:/home/app:/bin/sh
broken line
`

const groupText = `root:x:0:
wheel:x:10:app,root
app:x:1000:
audio:x:29:app
`

func TestLookup(t *testing.T) {
	tests := []struct {
		spec string
		want User
		err  error
	}{
		{"", User{UID: 0, GID: 0, Home: "/root", Name: "root", Groups: []int{10}}, nil},
		{"app", User{UID: 1000, GID: 1000, Home: "/home/app", Name: "app", Groups: []int{10, 29}}, nil},
		{"1000", User{UID: 1000, GID: 1000, Home: "/home/app", Name: "app", Groups: []int{10, 29}}, nil},
		{"app:audio", User{UID: 1000, GID: 29, Home: "/home/app", Name: "app"}, nil},
		{"4242", User{UID: 4242, GID: 0, Home: "/"}, nil},
		{"4242:77", User{UID: 4242, GID: 77, Home: "/"}, nil},
		{"nobody", User{}, ErrNotFound},
		{"app:nogroup", User{}, ErrNotFound},
	}
	for _, tt := range tests {
		got, err := Lookup(tt.spec, strings.NewReader(passwdText), strings.NewReader(groupText))
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Lookup(%q) error = %v, want %v", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Lookup(%q): %v", tt.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Lookup(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

func TestLookupNoFiles(t *testing.T) {
	got, err := Lookup("5:6", nil, nil)
	if err != nil || got.UID != 5 || got.GID != 6 {
		t.Fatalf("Lookup without files = %+v, %v", got, err)
	}
	if _, err := Lookup("root", nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("name without passwd: err = %v", err)
	}
}
