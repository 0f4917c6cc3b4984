package task

// TypeResourcesPurge deletes for good the resources deleted more than 30
// days ago, with their files, one organization at a time (each in its own
// tenant transaction). A periodic platform task; the generic
// retention:purge leaves the resources table to it.
const TypeResourcesPurge = "resources:purge"
