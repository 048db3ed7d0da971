// The service worker (/sw.js): shows a notification for each push the API sends (a new message
// while no tab was connected, a call ringing, missed or answered on another device) and opens
// the chat when it is clicked.
const worker = self as unknown as ServiceWorkerGlobalScope;
export {}; // a module, so `worker` stays local

interface MessagePush {
  type: 'message';
  chatId: string;
  messageId: string;
  title: string;
  body: string;
}

interface CallPush {
  type: 'call';
  event: 'incoming' | 'answered-elsewhere' | 'missed';
  callId: string;
  chatId: string;
  title: string;
  body: string;
}

worker.addEventListener('install', () => void worker.skipWaiting());
worker.addEventListener('activate', (event) => event.waitUntil(worker.clients.claim()));

worker.addEventListener('push', (event) => {
  const push = (event.data?.json() ?? {}) as Partial<MessagePush | CallPush>;
  // Pushes of one chat replace each other (the tag), as the server collapses bursts; those of a
  // call too (a missed call replaces its ringing), and a ringing call stays until it is handled.
  const call = push.type === 'call' ? push : undefined;
  const options: NotificationOptions = {
    body: push.body ?? 'New message',
    tag: call ? `call:${call.callId}` : push.chatId,
    icon: '/icon.svg',
    data: { chatId: push.chatId },
    requireInteraction: call?.event === 'incoming',
  };
  event.waitUntil(worker.registration.showNotification(push.title ?? 'Kocmoc', options));
});

worker.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const chatId = (event.notification.data as { chatId?: string } | null)?.chatId;
  const url = new URL(chatId ? `/#/chat/${chatId}` : '/', worker.location.origin).href;
  event.waitUntil(
    (async () => {
      // An open tab of the client shows the chat; else a new one opens.
      const [open] = await worker.clients.matchAll({ type: 'window' });
      const shown = open && (await open.navigate(url).catch(() => null));
      if (shown) await shown.focus();
      else await worker.clients.openWindow(url);
    })(),
  );
});
