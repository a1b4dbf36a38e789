/**
 * A request refused as it stands: 409 where it conflicts with the state now (another voter change is being
 * committed, a snapshot piece out of order), 422 where it cannot be done as asked. The HTTP layer answers with
 * its status and code (src/routes/errors.ts); anything else thrown is a bug.
 */
export class RefusedError extends Error {
  constructor(
    readonly status: 409 | 422,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "RefusedError";
  }
}
