export * from './host.js';
export * from './run.js';
