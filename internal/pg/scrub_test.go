package pg

import "testing"

func TestScrub(t *testing.T) {
	for in, want := range map[string]string{
		"cannot parse `postgres://bob:s3cret@host/db`": "cannot parse `postgres://bob:xxxxx@host/db`",
		"host=x password=s3cret user=bob":              "host=x password=xxxxx user=bob",
		"no secret here":                               "no secret here",
	} {
		if got := scrub(in); got != want {
			t.Errorf("scrub(%q) = %q, want %q", in, got, want)
		}
	}
}
