package pg

import "regexp"

var passwordInURL = regexp.MustCompile(`(://[^:/@\s]+:)[^@\s]+@`)
var passwordParam = regexp.MustCompile(`(?i)(password=)\S+`)

// scrub removes passwords from text that may contain a connection string.
func scrub(s string) string {
	s = passwordInURL.ReplaceAllString(s, "${1}xxxxx@")
	return passwordParam.ReplaceAllString(s, "${1}xxxxx")
}
