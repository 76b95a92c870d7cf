/** The NIP-47 notifications this bridge sends to connections granted `notifications`. */
export const NOTIFICATION_TYPES = ['payment_received', 'payment_sent', 'hold_invoice_accepted'] as const;
