package proxmox

// HTTPMaybeApplied exposes httpMaybeApplied to the table test.
var HTTPMaybeApplied = httpMaybeApplied

// QueryString and BodyParams expose the request encoders to the
// large-integer tests.
var (
	QueryString = queryString
	BodyParams  = bodyParams
)
