import { parseSignedPayment } from '../../protocol/authorization.ts';
import { grantAllowsTarget, parseGrant, signedPaymentTarget } from '../../protocol/grant.ts';
import { Nip47Error, NIP47_CODE_FOR_VAULT_ERROR } from '../../protocol/nip47-error.ts';
import { pay, type PaymentOutcome } from '../../deposits/payments.ts';
import type { MethodContext } from './method.ts';

/**
 * Pays what a paying request asks for. The plaintext is read with `parseSignedPayment`, the very
 * function vaults use, so the bridge reserves and forwards exactly what the vault will verify.
 * A grant naming one destination is held to it here first, as every vault holds it again.
 */
export async function payAsSigned(ctx: MethodContext, method: string, params: Record<string, unknown>): Promise<PaymentOutcome> {
  const signed = parseSignedPayment({ method, params });
  if (!signed.ok) throw new Nip47Error(NIP47_CODE_FOR_VAULT_ERROR[signed.error.code], signed.error.message);
  // The grant as the user signed it: the connection row does not keep its destination.
  const grant = parseGrant(ctx.connection.grantEvent);
  if (!grant.ok) throw new Nip47Error('UNAUTHORIZED', grant.error.message);
  const allowed = grantAllowsTarget(grant.value, signedPaymentTarget(signed.value));
  if (!allowed.ok) throw new Nip47Error(NIP47_CODE_FOR_VAULT_ERROR[allowed.error.code], allowed.error.message);
  return pay(ctx.wallet, { connection: ctx.connection, request: ctx.request, encryption: ctx.encryption, key: ctx.key, signed: signed.value, firstAttempt: !ctx.resumed });
}
