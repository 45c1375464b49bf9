"""Entry point from a checkout: python main.py fit|validate|test|predict --config configs/....yaml (installed: merge-cli)."""
from src.console import main

if __name__ == "__main__":
    main()
