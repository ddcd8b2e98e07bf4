/**
 * JSON-RPC 2.0 messages as MCP uses them (the SDK's types describe them; the gateway checks only
 * what it must to route, and passes parameters and results through untouched).
 */
export type RequestId = string | number;

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: RequestId;
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
}

export interface JsonRpcResponse {
  jsonrpc: '2.0';
  id: RequestId | null;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

export type Incoming =
  | { kind: 'request'; message: JsonRpcRequest }
  | { kind: 'notification'; message: JsonRpcNotification }
  | { kind: 'response'; message: JsonRpcResponse };

/** JSON-RPC and MCP error codes. */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  ConnectionClosed: -32000,
  RequestTimeout: -32001,
} as const;

export class JsonRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

export function errorResponse(id: RequestId | null, code: number, message: string, data?: unknown): JsonRpcResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Classifies one message; throws JsonRpcError(InvalidRequest) for anything that is not JSON-RPC 2.0. */
export function classify(value: unknown): Incoming {
  if (!isObject(value) || value.jsonrpc !== '2.0') throw new JsonRpcError(ErrorCode.InvalidRequest, 'not a JSON-RPC 2.0 message');
  const hasId = 'id' in value;
  if (typeof value.method === 'string') {
    if (value.params !== undefined && !isObject(value.params)) {
      throw new JsonRpcError(ErrorCode.InvalidRequest, 'params must be an object');
    }
    if (!hasId) return { kind: 'notification', message: value as unknown as JsonRpcNotification };
    const id = value.id;
    if ((typeof id !== 'string' && typeof id !== 'number') || (typeof id === 'number' && !Number.isInteger(id))) {
      throw new JsonRpcError(ErrorCode.InvalidRequest, 'id must be a string or an integer');
    }
    return { kind: 'request', message: value as unknown as JsonRpcRequest };
  }
  if (hasId && ('result' in value || 'error' in value)) return { kind: 'response', message: value as unknown as JsonRpcResponse };
  throw new JsonRpcError(ErrorCode.InvalidRequest, 'a request needs a method');
}
