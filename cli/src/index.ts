export { main, usage } from './main';
export { messageToJsonLines } from './tail';
export * from './stack';
