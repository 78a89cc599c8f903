package pgkv

// CopyMinRows lets tests choose when a commit uses COPY.
var CopyMinRows = &copyMinRows
