import { CordonError } from '../../../lib/errors.ts';

/** What the workflows engine and its store refuse, with the HTTP status the admin API answers with. */
export class WorkflowError extends CordonError {
  constructor(status: number, message: string) {
    super(message, { status });
    this.name = 'WorkflowError';
  }
}
