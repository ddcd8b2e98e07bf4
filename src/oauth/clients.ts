import { nowSeconds, type Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { ClientRepository } from '../store/clients.js';
import type { ClientMetadata } from './client-metadata.js';
import { ClientMetadataDocumentError, isMetadataDocumentUrl, type ClientMetadataDocuments } from './client-metadata-documents.js';
import { redirectUriPolicy } from './register.js';

/**
 * Whether a client_id names a metadata document rather than a registration: an https URL with a
 * path, or the same over http (accepted only where the operator allows private networks).
 */
export function isDocumentClientId(clientId: string): boolean {
  return isMetadataDocumentUrl(clientId) || (clientId.startsWith('http://') && isMetadataDocumentUrl(`https://${clientId.slice(7)}`));
}

/** A client known to the authorization server: registered (RFC 7591), or described by a metadata document. */
export interface KnownClient extends ClientMetadata {
  client_id: string;
  source: 'registered' | 'metadata-document';
}

export type ClientLookup = { client: KnownClient } | { problem: string };

/** Resolves a client_id to the client's metadata, wherever it comes from. */
export class ClientResolver {
  constructor(
    private readonly clients: ClientRepository,
    private readonly documents: ClientMetadataDocuments,
    private readonly config: () => Config,
    private readonly clock: Clock,
  ) {}

  async resolve(clientId: string): Promise<ClientLookup> {
    const config = this.config();
    const settings = config.oauth_server.client_metadata_documents;
    // Plain http documents only where the operator allows private networks (tests, closed networks).
    if (isMetadataDocumentUrl(clientId) || (settings.allow_private_network && isDocumentClientId(clientId))) {
      if (!settings.enabled) return { problem: 'this gateway does not accept client metadata documents' };
      try {
        const metadata = await this.documents.resolve(clientId, {
          allowPrivateNetwork: settings.allow_private_network,
          policy: redirectUriPolicy(config),
        });
        return { client: { ...metadata, client_id: clientId, source: 'metadata-document' } };
      } catch (err) {
        if (err instanceof ClientMetadataDocumentError) return { problem: `the client's metadata document ${err.message}` };
        throw err;
      }
    }
    const record = await this.clients.find(clientId);
    if (!record) return { problem: 'this client is not registered here' };
    // An unused registration past its idle period is gone, whether or not the sweep has run.
    if (record.last_used_at === null && record.client_id_issued_at < nowSeconds(this.clock) - config.oauth_server.unused_client_ttl) {
      return { problem: 'this client is not registered here' };
    }
    const { last_used_at: _used, client_id_issued_at: _issued, ...metadata } = record;
    return { client: { ...metadata, client_id: clientId, source: 'registered' } };
  }
}
