export * from './stats.js';
export * from './chart.js';
export * from './round-trips.js';
export * from './startup.js';
export * from './cluster.js';
export * from './fairness.js';
export * from './isolation.js';
export * from './overhead.js';
