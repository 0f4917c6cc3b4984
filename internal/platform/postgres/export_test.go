package postgres

// Waiting is waiting, for the package's external tests.
var Waiting = waiting
