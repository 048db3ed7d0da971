// Web Push opt-in: the service worker at /sw.js shows notifications for messages that arrive
// while no tab of the client is connected. The browser's push subscription is made with the
// server's VAPID key and registered for this device session (signing out ends it).
import { request } from './api.ts';
import { RegisterPushMutation, VapidPublicKeyQuery } from '@kocmoc/client/documents';

/** `available`: can be turned on; `on`: subscribed; `denied`: the person blocked notifications. */
export type PushState = 'unsupported' | 'available' | 'on' | 'denied';

const supported = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

export async function pushState(): Promise<PushState> {
  if (!supported()) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  const registration = await navigator.serviceWorker.getRegistration('/');
  const subscription = await registration?.pushManager.getSubscription();
  return subscription && Notification.permission === 'granted' ? 'on' : 'available';
}

function base64UrlToBytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

/** Asks for permission, subscribes and registers the subscription with the API. */
export async function enablePush(): Promise<PushState> {
  if (!supported()) throw new Error('This browser does not support push notifications.');
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') return permission === 'denied' ? 'denied' : 'available';
  const registration = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  await navigator.serviceWorker.ready;
  const { vapidPublicKey } = await request(VapidPublicKeyQuery, {});
  let subscription: PushSubscription;
  try {
    subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64UrlToBytes(vapidPublicKey) });
  } catch (error) {
    throw new Error(`The browser's push service refused the subscription: ${error instanceof Error ? error.message : String(error)}`);
  }
  const { endpoint, keys } = subscription.toJSON() as { endpoint: string; keys: { p256dh: string; auth: string } };
  await request(RegisterPushMutation, { input: { endpoint, keys } });
  return 'on';
}
