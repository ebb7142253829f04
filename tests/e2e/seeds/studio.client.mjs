import { io } from 'socket.io-client';

class WebSocketClient {
  constructor(url, token) {
    this.socket = io(url, {
      auth: { token },
      transports: ['websocket', 'polling']
    });

    this.setupHandlers();
  }

  setupHandlers() {
    this.socket.on('connect', () => {
      console.log('Connected');
    });

    this.socket.on('welcome', (data) => {
      console.log('Welcome:', data.message);
    });

    this.socket.on('authenticated', (data) => {
      console.log('Authenticated as:', data.userId);
    });

    this.socket.on('authError', (data) => {
      console.error('Auth failed:', data.message);
    });

    this.socket.on('disconnect', (reason) => {
      console.log('Disconnected:', reason);
    });

    this.socket.on('connect_error', (error) => {
      console.error('Connection error:', error.message);
    });
  }

  joinRoom(room) {
    return new Promise((resolve, reject) => {
      this.socket.emit('joinRoom', room, (response) => {
        if (response.success) resolve(response);
        else reject(new Error(response.error));
      });
    });
  }

  ping() {
    return new Promise((resolve) => {
      const start = Date.now();
      this.socket.emit('ping', (response) => {
        resolve(Date.now() - start);
      });
    });
  }

  disconnect() {
    this.socket.disconnect();
  }
}
