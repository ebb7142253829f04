import { io } from 'socket.io-client';

const deviceId = 'your-device-id-here';
const apiKey = 'your-api-key-here';

const socket = io(`http://localhost:3000/device/${deviceId}`, {
  path: '/ws',
  query: {
    apiKey: apiKey
  }
});

// Listen for connection
socket.on('connect', () => {
  console.log('Connected to device namespace:', socket.id);
});

// Listen for device events
socket.on('qr', (data) => {
  console.log('QR Code received:', data);
  // data: { deviceId, qr, timestamp }
});

socket.on('ready', (data) => {
  console.log('Device ready:', data);
  // data: { deviceId, phoneNumber?, timestamp }
});

socket.on('authenticated', (data) => {
  console.log('Device authenticated:', data);
  // data: { deviceId, phoneNumber, clientName, timestamp }
});

socket.on('message', (data) => {
  console.log('Message received:', data);
  // data: { deviceId, message, timestamp }
});

socket.on('state', (data) => {
  console.log('Device state changed:', data);
  // data: { deviceId, status, timestamp }
});

socket.on('disconnected', (data) => {
  console.log('Device disconnected:', data);
  // data: { deviceId, reason, timestamp }
});

// Handle connection errors
socket.on('connect_error', (error) => {
  console.error('Connection failed:', error.message);
});
