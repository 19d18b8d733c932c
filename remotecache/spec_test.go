package remotecache

import (
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{in: "type=registry,ref=127.0.0.1:5000/app:cache", want: Spec{Type: "registry", Ref: "127.0.0.1:5000/app:cache", Mode: "min"}},
		{in: "type=registry,ref=host/repo:tag,mode=max", want: Spec{Type: "registry", Ref: "host/repo:tag", Mode: "max"}},
		{in: "ref=host/repo:tag,type=registry,mode=min", want: Spec{Type: "registry", Ref: "host/repo:tag", Mode: "min"}},
		{in: "host/repo:cache", want: Spec{Type: "registry", Ref: "host/repo:cache", Mode: "min"}},
		{in: "type=local,dest=/tmp/c", want: Spec{Type: "local", Dir: "/tmp/c", Mode: "min"}},
		{in: "type=local,src=rel/dir,mode=max", want: Spec{Type: "local", Dir: "rel/dir", Mode: "max"}},
		{in: "", wantErr: "not key=value"},
		{in: "type=local", wantErr: "needs dest=DIR or src=DIR"},
		{in: "type=local,src=a,dest=b", wantErr: "both src and dest"},
		{in: "type=local,dest=a,ref=x/y", wantErr: "takes no ref"},
		{in: "type=registry", wantErr: "needs ref="},
		{in: "type=registry,ref=x/y,dest=d", wantErr: "takes no src or dest"},
		{in: "type=registry,ref=UPPER/Case", wantErr: "ref:"},
		{in: "type=s3,bucket=b", wantErr: `unknown key "bucket"`},
		{in: "type=s3", wantErr: `unknown type "s3"`},
		{in: "ref=x/y", wantErr: "no type"},
		{in: "type=registry,ref=x/y,mode=all", wantErr: `unknown mode "all"`},
		{in: "type=registry,type=local", wantErr: "type given twice"},
		{in: "type=registry,ref=", wantErr: "not key=value"},
		{in: "type=registry,ref=x/y,", wantErr: "not key=value"},
	}
	for _, tt := range tests {
		got, err := ParseSpec(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "cache spec") {
				t.Errorf("ParseSpec(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if again, err := ParseSpec(got.String()); err != nil || again != got {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}
