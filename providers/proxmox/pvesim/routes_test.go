package pvesim

import (
	"slices"
	"testing"
)

// The route table and the embedded schema's endpoint list are the same set:
// a table entry outside Endpoints() would never be matched (routes walks
// Endpoints()), and a schema endpoint without an entry would answer 501.
func TestRouteTableMatchesSchema(t *testing.T) {
	eps := Endpoints()
	for ep := range handlers {
		if !slices.Contains(eps, ep) {
			t.Errorf("route table entry %q is not a schema endpoint: it is never matched", ep)
		}
	}
	for _, ep := range eps {
		if _, ok := handlers[ep]; !ok {
			t.Errorf("schema endpoint %q has no entry in the route table", ep)
		}
	}
}
