import { io } from 'socket.io-client';

// Connect to default namespace
const socket = io('http://localhost:3000');

// Connect to specific namespace
const mediaSocket = io('http://localhost:3000/media');

// Connect with authentication token
const authSocket = io('http://localhost:3000', {
  auth: {
    token: 'your-jwt-token'
  }
});
