import socketio

device_id = 'your-device-id-here'
api_key = 'your-api-key-here'

sio = socketio.Client()

@sio.event
def connect():
    print('Connected to device namespace')

@sio.event
def qr(data):
    print('QR Code received:', data)

@sio.event
def ready(data):
    print('Device ready:', data)

@sio.event
def authenticated(data):
    print('Device authenticated:', data)

@sio.event
def message(data):
    print('Message received:', data)

@sio.event
def state(data):
    print('Device state changed:', data)

@sio.event
def disconnected(data):
    print('Device disconnected:', data)

# Connect to device namespace
sio.connect(
    f'http://localhost:3000/device/{device_id}',
    socketio_path='/ws',
    headers={'apiKey': api_key}
)

# Keep connection alive
sio.wait()
