"""What a forward is and how it lives: state machine, Manager, events. Knows no UI."""
