/** What the workflows engine and its store refuse, with the HTTP status the admin API answers with. */
export class WorkflowError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'WorkflowError';
    this.status = status;
  }
}
