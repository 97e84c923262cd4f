package observability

import "go.temporal.io/sdk/log"

// TemporalLogger must keep satisfying the SDK's logger; the check lives in a
// test so the package itself does not import the SDK.
var _ log.Logger = TemporalLogger{}
