//! Settings writes through the API land in WORKFLOW.md: concurrent calls all land, the rest of the file
//! stays byte-for-byte, a person's concurrent edit of other keys is kept, and a broken one is a 409.
