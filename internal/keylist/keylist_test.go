package keylist

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	a, b := strings.Repeat("ab", 4), strings.Repeat("cd", 4)
	got, err := Parse("# retired, old:"+b+"\n new:"+a+" , mid:"+b+"\n\n", 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "new" || got[1].ID != "mid" || string(got[1].Key) != "\xcd\xcd\xcd\xcd" {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{"", "# only", "k:" + a[:6], "k:" + a + "zz", a + ":k", "k:" + a + ",k:" + b, "nocolon", ":" + a} {
		_, err := Parse(bad, 4)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "abab") || strings.Contains(err.Error(), "cdcd") {
			t.Errorf("%q: error echoes key material: %v", bad, err)
		}
	}
}
