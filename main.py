"""Entry point: python main.py fit|validate|test|predict --config configs/....yaml"""
import src.methods  # noqa: F401  (short class names in configs resolve)
import src.taskpool  # noqa: F401
from src.cli import cli_main

if __name__ == "__main__":
    cli_main()
