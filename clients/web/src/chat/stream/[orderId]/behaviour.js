// @ts-check
/** Two small behaviours of the order chat, as render-nothing components. */

import { useEffect } from "react";
import { useChannelStateContext, useChatContext } from "stream-chat-react";

/** Later than stream-chat-react's own mark-read throttle (500 ms, leading edge only). */
const MARK_READ_AFTER_MS = 600;

/** @param {{localMetadata?: {file?: {type?: string}}}} attachment */
const isImage = (attachment) => /^image\//.test(attachment.localMetadata?.file?.type ?? "");

/**
 * Attachments are images only: the file picker offers images, other files are not taken.
 * @param {{client: import("stream-chat").StreamChat}} props
 */
export function ImagesOnly({ client }) {
  useEffect(() => {
    client.setMessageComposerSetupFunction(({ composer }) => {
      composer.updateConfig({
        attachments: { acceptedFiles: ["image/*"], fileUploadFilter: isImage },
      });
    });
  }, [client]);
  return null;
}

/**
 * Marks the channel read once a burst of new messages has arrived while the page is
 * visible. stream-chat-react marks read on a message's arrival but drops further calls
 * within 500 ms, so the last message of a burst (a text, then an image) would stay unread
 * and the sender would never see "read" on it.
 */
export function MarkReadOnArrival() {
  const { channel } = useChannelStateContext("MarkReadOnArrival");
  const { client } = useChatContext("MarkReadOnArrival");
  useEffect(() => {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const markIfUnread = () => {
      const me = client.userID;
      const last = channel.state.latestMessages.at(-1);
      if (!me || !last || document.visibilityState !== "visible" || channel.disconnected) return;
      if (channel.state.read[me]?.last_read_message_id === last.id) return;
      channel.markRead().catch(() => {});
    };
    const subscription = channel.on("message.new", (event) => {
      if (event.user?.id === client.userID) return;
      clearTimeout(timer);
      timer = setTimeout(markIfUnread, MARK_READ_AFTER_MS);
    });
    return () => {
      clearTimeout(timer);
      subscription.unsubscribe();
    };
  }, [channel, client]);
  return null;
}
