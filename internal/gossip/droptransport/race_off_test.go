//go:build !race

package droptransport

const raceDetector = false
