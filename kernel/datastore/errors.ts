/**
 * The datastore's error vocabulary: one Schema.TaggedError per refusal, each
 * naming the file (`path`) it was about. The synchronous core (volume.ts)
 * returns them as values; the Effect service (service.ts) puts them in the
 * error channel. Every refusal happens before anything is written.
 */
import { Schema } from "effect"

/** A file name that is not a plain name inside the datastore; `problems` lists every rule it breaks. */
export class DatastorePathError extends Schema.TaggedError<DatastorePathError>()("DatastorePathError", {
  path: Schema.String,
  problems: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `invalid datastore file name ${JSON.stringify(this.path)}: ${this.problems.join("; ")}`
  }
}

export class DatastoreNotFoundError extends Schema.TaggedError<DatastoreNotFoundError>()("DatastoreNotFoundError", {
  path: Schema.String
}) {
  override get message(): string {
    return `no file ${JSON.stringify(this.path)} in the datastore`
  }
}

export class DatastoreExistsError extends Schema.TaggedError<DatastoreExistsError>()("DatastoreExistsError", {
  path: Schema.String
}) {
  override get message(): string {
    return `a file ${JSON.stringify(this.path)} already exists in the datastore`
  }
}

/** No directory slot, or no free extent of `requested` sectors. */
export class DatastoreFullError extends Schema.TaggedError<DatastoreFullError>()("DatastoreFullError", {
  path: Schema.String,
  requested: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot create ${JSON.stringify(this.path)} (${this.requested} sectors): ${this.reason}`
  }
}

/** A bad size at create, or a sector range outside the file. */
export class DatastoreRangeError extends Schema.TaggedError<DatastoreRangeError>()("DatastoreRangeError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${JSON.stringify(this.path)}: ${this.reason}`
  }
}

/** The block driver failed (the disk or its controller). */
export class DatastoreIoError extends Schema.TaggedError<DatastoreIoError>()("DatastoreIoError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `datastore I/O failed during ${this.operation}: ${this.reason}`
  }
}

/** The disk does not hold a datastore we can mount (and formatting it was not allowed), or is damaged. */
export class DatastoreFormatError extends Schema.TaggedError<DatastoreFormatError>()("DatastoreFormatError", {
  problems: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `cannot mount the datastore: ${this.problems.join("; ")}`
  }
}

export type DatastoreError =
  | DatastorePathError
  | DatastoreNotFoundError
  | DatastoreExistsError
  | DatastoreFullError
  | DatastoreRangeError
  | DatastoreIoError
  | DatastoreFormatError
