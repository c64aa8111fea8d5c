/** The slicelab version every process reports when it registers. */
export const version = '0.1.0';
