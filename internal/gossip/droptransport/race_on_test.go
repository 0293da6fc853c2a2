//go:build race

package droptransport

// raceDetector is true under -race, which slows memberlist's timers enough
// that a cluster of a hundred or more members in one process never settles.
const raceDetector = true
