package attribution

// KeptHits are a match key's hits as MatchHit messages, newest first: the
// tests' view of MatchState.hit_entries.
var KeptHits = matchHits
