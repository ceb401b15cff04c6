/** The statuses of a workflow instance, apart from the zod schemas so that the dashboard's browser bundle can use them without zod. */
export const STATUSES = ['queued', 'running', 'paused', 'waiting', 'errored', 'terminated', 'complete'] as const;
export type InstanceStatusName = (typeof STATUSES)[number];
