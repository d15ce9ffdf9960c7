export { main, usage } from './main';
export { recordToJson } from './tail';
export * from './stack';
