import { io } from 'socket.io-client';

const connectWebSocket = (token, sessionId, artifactId) => {
  const socket = io('ws://your-domain', {
    path: '/realtime',
    auth: { token },
    query: { 
      sessionId,
      ...(artifactId && { artifactId })
    }
  });

  // Connection events
  socket.on('connect', () => {
    console.log('Connected to WebSocket server');
  });

  socket.on('disconnect', () => {
    console.log('Disconnected from WebSocket server');
  });

  // Message handling
  socket.on('message', (message) => {
    const parsed = typeof message === 'string' ? JSON.parse(message) : message;
    
    switch (parsed.type) {
      case 'RESPONSE':
        console.log('Received response:', parsed);
        break;
      case 'UPDATE':
        console.log('Received update:', parsed);
        break;
      case 'ERROR':
        console.error('Received error:', parsed);
        break;
    }
  });

  // Error handling
  socket.on('connect_error', (error) => {
    console.error('Connection error:', error);
  });

  return socket;
};

// Example: Sending an action request
const sendAction = (socket, action, data) => {
  const message = {
    type: 'REQUEST',
    requestId: Date.now().toString(),
    action,
    data
  };
  
  socket.emit('message', JSON.stringify(message));
};

// Usage example
const socket = connectWebSocket(
  'your-jwt-token',
  'your-session-id',
  'optional-artifact-id'
);

sendAction(socket, 'someAction', { key: 'value' });
