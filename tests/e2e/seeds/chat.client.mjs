import { io } from "socket.io-client";

class WebSocketClient {
  constructor(token) {
    this.socket = io("ws://localhost:3001/chat", {
      auth: { token },
    });

    this.setupEventListeners();
  }

  setupEventListeners() {
    // Connection events
    this.socket.on("connect", () => {
      console.log("Connected to WebSocket");
    });

    this.socket.on("disconnect", () => {
      console.log("Disconnected from WebSocket");
    });

    // Message events
    this.socket.on("message:new", (message) => {
      console.log("New message:", message);
    });

    this.socket.on("user:typing", (data) => {
      console.log("User typing:", data);
    });

    // Presence events
    this.socket.on("user:online", (user) => {
      console.log("User online:", user);
    });

    this.socket.on("user:offline", (user) => {
      console.log("User offline:", user);
    });
  }

  joinRoom(chatId) {
    return new Promise((resolve, reject) => {
      this.socket.emit("join:chat", { chatId }, (response) => {
        if (response.success) {
          resolve(response);
        } else {
          reject(new Error(response.message));
        }
      });
    });
  }

  sendMessage(chatId, content, type = "text") {
    return new Promise((resolve, reject) => {
      this.socket.emit(
        "message:send",
        {
          chatId,
          content,
          type,
        },
        (response) => {
          if (response.success) {
            resolve(response);
          } else {
            reject(new Error(response.message));
          }
        }
      );
    });
  }

  setTyping(chatId, isTyping) {
    this.socket.emit("message:typing", { chatId, isTyping });
  }

  disconnect() {
    this.socket.disconnect();
  }
}

// Usage
const client = new WebSocketClient("your-jwt-token");
await client.joinRoom("chat-uuid");
await client.sendMessage("chat-uuid", "Hello, world!");
client.setTyping("chat-uuid", true);
