const io = require('socket.io-client');

// Connect to the WebSocket server
const socket = io('http://localhost:3000', {
  auth: {
    clientId: 'my-client-id',
    userId: 'my-user-id'
  }
});

// Listen for connection
socket.on('connect', () => {
  console.log('Connected to WebSocket server');
});

// Listen for photo upload events
socket.on('photo.uploaded', (data) => {
  console.log('Photo uploaded:', data);
});

// Listen for photo processing completion
socket.on('photo.processing.completed', (data) => {
  console.log('Photo processing completed:', data);
});

// Listen for photo processing failures
socket.on('photo.processing.failed', (data) => {
  console.log('Photo processing failed:', data);
});

// Listen for system maintenance events
socket.on('system.maintenance', (data) => {
  console.log('System maintenance:', data);
});

// Handle disconnection
socket.on('disconnect', () => {
  console.log('Disconnected from WebSocket server');
});
