package localapi

// SyncSummary is what `mmogit --json sync` prints: the counts summed over
// every peer synced (partial counts of failed syncs included: what they
// stored before failing is stored), how many peers failed, and each
// peer's result.
type SyncSummary struct {
	Received int          `json:"received"`
	Rejected int          `json:"rejected"`
	Refused  int          `json:"refused"` // offered by peers that may not store here
	Sent     int          `json:"sent"`
	Failed   int          `json:"failed"` // peers whose sync ended with an error
	Peers    []SyncResult `json:"peers"`
}

// Summarize sums per-peer results into a SyncSummary.
func Summarize(rs []SyncResult) SyncSummary {
	s := SyncSummary{Peers: rs}
	if s.Peers == nil {
		s.Peers = []SyncResult{}
	}
	for _, r := range rs {
		s.Received += r.Received
		s.Rejected += r.Rejected
		s.Refused += r.Refused
		s.Sent += r.Sent
		if r.Error != "" {
			s.Failed++
		}
	}
	return s
}
