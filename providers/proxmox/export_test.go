package proxmox

// HTTPMaybeApplied exposes httpMaybeApplied to the table test.
var HTTPMaybeApplied = httpMaybeApplied
