export * from './config.js';
export * from './nats-server.js';
export * from './processes.js';
export * from './run-file.js';
export * from './registry.js';
export * from './launcher.js';
export * from './lifecycle.js';
export * from './auth.js';
