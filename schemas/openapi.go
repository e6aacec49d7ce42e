package schemas

import _ "embed"

// openAPI is the OpenAPI 3.1 document of the HTTP API, served at
// GET /openapi.json. cmd/logbook's tests check it against the router.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document of logbook's HTTP API. The
// slice is shared: do not modify it.
func OpenAPI() []byte { return openAPI }
